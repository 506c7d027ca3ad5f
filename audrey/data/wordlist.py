"""Everyday English words for the rejection's detector to learn "not a digit" from (audrey.live.reject).

None is a digit's name or its homophone ("to", "for", "won", "ate"), a held-out word
(reject.HELD_OUT_WORDS, or its homophone: "know", "high"), or a calibration word
(reject.CALIBRATION_WORDS): tests, benchmarks and calibration must not score words the detector learnt.
"""

COMMON_WORDS = tuple("""
able above accept across act add address afraid against age agree air allow almost alone along
already also although among amount animal another apartment appear area arm army around arrive art
article ask attack attention aunt autumn away baby bad bag ball bank bar base basket bath battle
beach bear beat beautiful because become bed beer begin behind believe bell belt bench best better
between bicycle bill bit bitter black blame blanket blood board boat body bone border boss bottle
bottom bowl box boy brain branch bread break breakfast bridge bright bring brother brown brush build
burn bus business busy butter buy cable cake camera camp candle cap captain card care carry case
castle catch cause ceiling center certain chance change charge cheap check chicken child chocolate
choose church circle claim class clean clear climb clock close cloth cloud club coat cold collect
college color come common company compare complete concern control cook cool copy corner correct
cost cotton count country couple course cousin cover cow crash cream crowd cry cup cut damage dance
danger dark daughter dead deal dear decide deep degree desk detail die difficult dinner direction
dirty discover dish double doubt draw dream dress drink drive drop dry duck dust early earth east
easy eat edge effect egg either empty end enemy engine enough enter equal escape evening event exact
example excuse exit expect explain eye face fact fail fair fall false famous far farm fast fat
father fear feed feel female fence few field fill film final find finger finish fish flag flat floor
fly fold follow food foot force forest forget forward frame fresh fridge front fruit fuel full funny
future game gas gather general gentle gift girl give glass glove goal god gold golf grab grand grass
gray ground group grow guard guess guest guide guitar hair half hall hammer hand hang hard hat head
health heart heat height hide hill history hit hobby hole holiday honest horse hospital hot hotel
hour human hungry hurry hurt husband ice idea ill image important inch include inside into iron
island jacket job join joke judge juice jump jungle just keep key kick kid kill kind king kiss knee
lady lake lamp land language large last laugh law lawyer lazy lead leaf learn least leather leave
leg lemon less lesson level library lid lift like limit lip list load local lock long look lose loud
love low luck lunch machine mad magic mail main make male man map mark market marry master match
matter meal mean meat meet member memory message metal middle milk mind minute mirror miss model
modern moment moon mountain mouse mouth move movie mud muscle museum must nail narrow nation nature
near neck need needle nest net news next nose note notice ocean offer office oil only opinion order
outside owner page pain paint pair palace pan pants park part party pass past path pay peace pen
pencil pepper person pet pick picture piece pig pill pilot pink pipe place plan plane plant plate
play pocket point police pool poor potato power present press pretty price print prison private
prize problem promise proud public pull pump punch push queen quick quiet rabbit race radio rain
raise reach read real reason record red relax remember rent report rest return rice rich ride ring
road rock roof room root rope rough round row rule salad salt same sand save say scale science score
season secret sell sense serve service shadow shake shape share sharp sheep shelf shell shirt shop
short shoulder shout show shut side silver simple sing sister size skin skirt sky sleep slow smell
smile smoke snake snow soap soft soldier son song soon sound soup south space speak special speed
spell spend spoon sport spring square stage stairs stamp stand start station stay steal step stick
stone store storm story strange stress string strong student study stuff sugar suit supper surprise
sweet swim system tail take talk tall taste taxi tea teach team teeth tell tennis test thank thick
thin think thirsty throw thumb ticket tiger tired title toe toilet tomato tongue tool tooth top
total touch town toy track trade train travel trip trouble truck true trust try turn type ugly uncle
under understand until use usual valley value van video village visit voice vote walk wall want warm
wash watch wave way wear wedding welcome west wet wheel white whole wide wife wild win wind wing
wish woman wood word world worry write wrong young
""".split())
